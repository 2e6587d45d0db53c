import shapes._

object Main {
  def main(args: Array[String]): Unit = {
    val all = List(Rect(2, 3), Square(4))
    all.foreach(s => println(s"$s area=${s.area}"))
    println(f"total=${all.map(_.area).sum}%.1f")
  }
}
