package main

import "fmt"

func main() { fmt.Printf("sum=%d twice=%d\n", add(2, 3), twice(7)) }
