package shapes

sealed trait Shape { def area: Double }
case class Rect(w: Double, h: Double) extends Shape { def area: Double = w * h }
case class Square(side: Double) extends Shape { def area: Double = side * side }
