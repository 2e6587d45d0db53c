IO.puts(:stderr, "failing on purpose")
System.halt(3)
