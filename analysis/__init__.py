"""Analyses of networks for users: a semantic diff of prototxts and a complexity summary."""
