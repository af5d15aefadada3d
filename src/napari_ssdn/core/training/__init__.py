"""Training: settings read from the user and the data, building the model, the loop, several ranks."""
