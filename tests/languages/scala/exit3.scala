object Main {
  def main(args: Array[String]): Unit = {
    Console.err.println("failing on purpose")
    sys.exit(3)
  }
}
