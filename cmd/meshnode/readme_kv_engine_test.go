package main

// checkEngineArgs is replaced when meshnode engine lands.
func checkEngineArgs(args []string) error { return nil }
