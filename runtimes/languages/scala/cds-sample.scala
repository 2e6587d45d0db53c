// Compiled when the image is built, so that the compiler's classes for the
// usual parts of a program (objects, case classes, traits, collections,
// pattern matching, string interpolation, I/O) are in the class-data archive;
// it is not part of any program.
import scala.io.StdIn
import scala.collection.mutable

sealed trait Shape { def area: Double }
case class Circle(r: Double) extends Shape { def area: Double = math.Pi * r * r }
case class Rect(w: Double, h: Double) extends Shape { def area: Double = w * h }

object Main {
  def largest[T](xs: Seq[T])(implicit ord: Ordering[T]): Option[T] =
    if (xs.isEmpty) None else Some(xs.max)

  def main(args: Array[String]): Unit = {
    val lines = Iterator.continually(StdIn.readLine()).takeWhile(_ != null).toList
    val shapes: List[Shape] = List(Circle(1), Rect(2, 3))
    val names = shapes.map {
      case Circle(r) => s"circle $r"
      case Rect(w, h) => s"rect ${w}x$h"
    }
    val counts = mutable.Map[String, Int]().withDefaultValue(0)
    for (w <- "a b a".split(" ")) counts(w) += 1
    val sum = (1 to 10).filter(_ % 2 == 0).foldLeft(0L)(_ + _)
    println(f"${names.mkString(", ")} ${shapes.map(_.area).sum}%.2f $sum ${counts.toSeq.sorted} ${largest(lines.map(_.length))}")
  }
}
