FAST = 2**4  # scrypt cost for the throwaway keystores of these tests
