class Greeter {
    static String greet(String who) { "Hello, ${who}!" }
}
