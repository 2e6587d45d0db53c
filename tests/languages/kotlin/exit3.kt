import kotlin.system.exitProcess

fun main() {
    System.err.println("failing on purpose")
    exitProcess(3)
}
