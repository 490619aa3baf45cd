"""txsse's tests: a package, so that their helpers import one way (``tests.helpers``)."""
