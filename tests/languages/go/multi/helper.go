package main

func add(a, b int) int { return a + b }
func twice(x int) int  { return 2 * x }
