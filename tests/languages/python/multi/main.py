from greeting import greet

print(greet("World"))
