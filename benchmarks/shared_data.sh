# Sourced by the benchmark scripts: sets DATA to the shared data folder (the one holding
# cifar10/cifar10-jpg.tar.gz and nasbench201/nb201_cifar10.csv), the first found of
# $NAONET_SHARED/data (as the tests read it), shared/data inside the checkout (where a
# device machine gets it: ../shared does not travel there) and ../shared/data. DATA
# stays empty when none holds the CIFAR-10 archive; the caller decides what that means.
DATA=""
for candidate in ${NAONET_SHARED:+"$NAONET_SHARED/data"} shared/data ../shared/data; do
    if [ -e "$candidate/cifar10/cifar10-jpg.tar.gz" ]; then
        DATA=$candidate
        break
    fi
done
