"""Training the reasoning LM: the training set, the base LM, and GRPO with the paper's rewards."""
