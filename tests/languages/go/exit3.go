package main

import (
	"fmt"
	"os"
)

func main() { fmt.Fprintln(os.Stderr, "failing on purpose"); os.Exit(3) }
