"""Built-in step kinds. Each module holds one config model and one build function, registered
through the ``flowrunner.steps`` entry point group exactly like a third-party step."""
