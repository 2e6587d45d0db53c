object Main {
  def main(args: Array[String]): Unit = {
    val buffer = new Array[Byte](8192)
    Iterator.continually(System.in.read(buffer)).takeWhile(_ > 0).foreach(n => System.out.write(buffer, 0, n))
    System.out.flush()
  }
}
