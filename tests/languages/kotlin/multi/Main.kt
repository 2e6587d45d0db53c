import geometry.Point
import geometry.manhattan

fun main() {
    val p = Point(1, 2) + Point(3, -7)
    println("$p distance=${manhattan(p)}")
}
