input <- file("stdin")
writeLines(readLines(input))
close(input)
