source("helpers.R")
cat(greet("R"), "\n", sep = "")
cat("squares:", square(1:4), "\n")
