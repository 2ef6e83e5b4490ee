"""The cloudrun target: its component and everything the deployer knows about it."""
