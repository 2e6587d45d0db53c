say 'Hello, World!';
