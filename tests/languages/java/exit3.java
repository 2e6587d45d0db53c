public class Main { public static void main(String[] args) { System.err.println("failing on purpose"); System.exit(3); } }
