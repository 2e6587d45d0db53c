// Compiled when the image is built, so that the compiler's classes for the
// usual parts of a program (classes, collections, lambdas, strings, I/O) are
// in the class-data archive; it is not part of any program.
data class Item(val name: String, val weight: Int)

interface Shape { fun area(): Double }
class Circle(private val r: Double) : Shape { override fun area() = Math.PI * r * r }

enum class Kind { A, B }

fun <T : Comparable<T>> largest(xs: List<T>): T? = xs.max()

fun main() {
    val lines = generateSequence(::readLine).toList()
    val items = listOf(Item("a", 3), Item("b", 1)).sortedBy { it.weight }
    val byName = items.associateBy { it.name }.toMutableMap()
    val total = items.sumBy { it.weight } + lines.size
    val text = buildString { for ((i, item) in items.withIndex()) append("$i:${item.name} ") }
    val shapes: Array<Shape> = arrayOf(Circle(1.0))
    when (Kind.valueOf("A")) {
        Kind.A -> println("$text $total ${byName.keys} ${"%.2f".format(shapes[0].area())} ${largest(listOf(1, 2))}")
        Kind.B -> println(lines.joinToString(","))
    }
}
