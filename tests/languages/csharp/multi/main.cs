using System;
using System.Linq;
using System.Collections.Generic;
class Program { static void Main() { var l = new List<int> { 1, 2, 3 }; Console.WriteLine($"sum={Helper.Add(2, 3)} twice={Helper.Twice(l.Sum() + 1)}"); } }
