#import <Foundation/Foundation.h>

int main(void) {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    NSData *input = [[NSFileHandle fileHandleWithStandardInput] readDataToEndOfFile];
    [[NSFileHandle fileHandleWithStandardOutput] writeData:input];
    [pool drain];
    return 0;
}
