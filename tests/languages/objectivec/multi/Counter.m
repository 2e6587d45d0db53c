#import "Counter.h"

@implementation Counter
- (void)add:(NSInteger)amount {
    _total += amount;
}
- (NSInteger)total {
    return _total;
}
@end
