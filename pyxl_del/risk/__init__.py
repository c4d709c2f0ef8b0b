"""Risk analytics on the fitted chains (the portfolio's digital twin): expected loss, stress scenarios, credit VaR,
concentration, indicative capital, alerts. Imports the engine only."""
