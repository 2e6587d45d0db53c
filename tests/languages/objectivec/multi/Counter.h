#import <Foundation/Foundation.h>

@interface Counter : NSObject {
    NSInteger _total;
}
- (void)add:(NSInteger)amount;
- (NSInteger)total;
@end
