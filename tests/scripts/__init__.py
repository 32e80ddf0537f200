"""Helper programs the tests launch as subprocesses (under torchrun or plain python); they hold no tests."""
