#include <cstdlib>
#include <stdexcept>
#include <iostream>
int main() { std::cerr << "failing on purpose\n"; std::exit(3); }
