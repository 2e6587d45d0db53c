def names = ["multi", "file"]
names.each { println Greeter.greet(it) }
println Greeter.greet(names.join("-").toUpperCase())
