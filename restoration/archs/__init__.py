"""Model architectures: plain nn.Modules, no I/O, registered by name in restoration.registry."""
