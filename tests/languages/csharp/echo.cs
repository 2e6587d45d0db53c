using System;
using System.IO;
class Program { static void Main() { using (var i = Console.OpenStandardInput()) using (var o = Console.OpenStandardOutput()) i.CopyTo(o); } }
