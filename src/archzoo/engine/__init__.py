"""The engine: one trainer loop, checkpoints, optimizers, schedules, precision, DDP, logging."""
