import std.stdio;
import helper : twice;

void main()
{
    writefln("twice=%d", twice(21));
}
