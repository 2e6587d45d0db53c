#import <Foundation/Foundation.h>
#import "Counter.h"

int main(void) {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    Counter *counter = [[Counter alloc] init];
    [counter add:2];
    [counter add:3];
    NSArray *words = [NSArray arrayWithObjects:@"sum", @"is", nil];
    printf("%s %ld\n", [[words componentsJoinedByString:@" "] UTF8String], (long)[counter total]);
    [counter release];
    [pool drain];
    return 0;
}
