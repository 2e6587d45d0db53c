// Run when the image is built, so that the classes Groovy loads to compile and
// run the usual parts of a script (classes, closures, collections, GStrings,
// JSON, I/O) are in the class-data archive; it is not part of any program.
import groovy.json.JsonOutput
import groovy.transform.ToString

@ToString
class Point { int x; int y }

def lines = System.in.newReader().readLines()
def points = [new Point(x: 1, y: 2), new Point(x: 3, y: 4)]
def total = points.collect { it.x + it.y }.sum()
def counts = "b a c a".split(" ").countBy { it }
def text = String.format("%.2f", Math.PI)
println "${points} ${total} ${counts} ${lines.size()} ${text} ${JsonOutput.toJson([k: [1, 2]])}"
