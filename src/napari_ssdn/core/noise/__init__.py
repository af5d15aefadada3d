"""Noise: the likelihoods and posterior, and the noise measured and chosen from the data."""
