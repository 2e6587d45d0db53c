#pragma once
namespace helper { int add(int a, int b); int twice(int x); }
