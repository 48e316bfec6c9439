package main

import (
	"fmt"
	"io"
	"os"
)

func runDemo(args []string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	fmt.Fprintln(stderr, "meshnode demo: not implemented yet")
	return 1
}
