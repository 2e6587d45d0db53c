// Copies standard input to standard output byte for byte.
import std.stdio;

void main()
{
    ubyte[4096] buffer;
    foreach (chunk; stdin.byChunk(buffer[]))
        stdout.rawWrite(chunk);
}
