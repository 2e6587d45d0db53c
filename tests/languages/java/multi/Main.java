import java.util.*;
public class Main { public static void main(String[] args) { List<Integer> l = new ArrayList<>(List.of(1, 2)); System.out.println("sum=" + Helper.add(2, 3) + " twice=" + Helper.twice(7)); } }
