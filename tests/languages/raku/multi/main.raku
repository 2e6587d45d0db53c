use Greeting;

say greet('modules'), ' ', [+] 1..4;
