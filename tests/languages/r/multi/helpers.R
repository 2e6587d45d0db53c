square <- function(x) x * x
greet <- function(name) sprintf("Hello, %s!", name)
