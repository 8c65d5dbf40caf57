"""Pure rendering: a custom resource (plus what it references) -> the Kubernetes objects it should own."""
