"""The decision engine on the same chains: unit economics, policies, the decision twin, cut-off / pricing / mix
optimisation, the Gymnasium environment and agent, decisions one by one or in batches, A/B tests, the audit log."""
