/* main.c - placeholder until the FUSE layer lands. */
int main(void) { return 1; }
