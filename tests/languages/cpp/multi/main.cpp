#include <bits/stdc++.h>
#include "helper.h"
int main() { std::cout << "sum=" << helper::add(2, 3) << " twice=" << helper::twice(7) << "\n"; }
