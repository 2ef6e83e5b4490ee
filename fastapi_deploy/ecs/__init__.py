"""The ecs target: its component and everything the deployer knows about it."""
