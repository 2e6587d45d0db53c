using System;
class Program { static void Main() { Console.Error.WriteLine("failing on purpose"); Environment.Exit(3); } }
