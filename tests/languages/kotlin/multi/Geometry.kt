package geometry

data class Point(val x: Int, val y: Int) {
    operator fun plus(other: Point) = Point(x + other.x, y + other.y)
}

fun manhattan(p: Point) = Math.abs(p.x) + Math.abs(p.y)
