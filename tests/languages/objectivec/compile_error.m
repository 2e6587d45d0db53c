#import <Foundation/Foundation.h>

int main(void) {
    NSString *s = @"missing semicolon"
    return [s length];
}
