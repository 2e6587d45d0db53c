fun main() {
    val x: Int = "string"
    println(x)
}
